from django.core.management.base import BaseCommand

from providers.local import chat_model_dir, embedder, load_chat_model


class Command(BaseCommand):
    help = (
        "Load the local models once: converts the shipped SmolLM2 GGUF to the fast-loading cache "
        "(first run only, ~1 minute) so the first generated answer does not wait for it."
    )

    def handle(self, *args, **options):
        embedder()
        cached = (chat_model_dir() / "config.json").exists()
        load_chat_model()
        self.stdout.write(
            self.style.SUCCESS(
                f"Local models ready ({'cached' if cached else 'converted to'} {chat_model_dir()})."
            )
        )
