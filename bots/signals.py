"""What a bot's settings announce to the apps that come after bots (knowledge, training, chat).

Apps depend one way (accounts -> bots -> knowledge -> training -> chat), so bots never imports
the apps that react to its changes; they connect receivers in their AppConfig.ready().
"""

from django.dispatch import Signal

# Sent by bots.services.bot_update, inside the request, after the owner saved another provider
# or embedding model, or another language. kwargs: bot, provider_before, model_before,
# language_before (the settings as they were). knowledge.reembedding starts the switch of the
# bot's vectors and rebuilds its full-text vectors in the new language; its receiver returns
# True when a re-embedding started.
embedding_settings_changed = Signal()

# Sent by bots.services.bot_update when the owner saved other answer thresholds on the settings
# form (kwargs: bot): training.calibration stops fitting them, so its next fit keeps them.
thresholds_set_by_hand = Signal()
