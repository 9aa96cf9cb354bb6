"""A stand-in ``vllm`` module: lets a test's pytest run choose the vLLM backend (``--backend auto``
on fake GPUs) without vLLM installed. It loads no model; tests using it never evaluate one."""
