"""LoGo Studio's engine: training-free, instance-level LoRA selection and merging (the LoGo method)."""
