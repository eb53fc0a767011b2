# Fine-tuning models (TrainingRun, Evaluation) arrive with the fine-tuning issue.
