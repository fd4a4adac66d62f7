"""Fine-tuning: dataset checks (datasets.py), local LoRA (lora.py), OpenAI jobs (openai_jobs.py), the registry."""
