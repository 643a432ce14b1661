"""medtune: fine-tune open LLMs into medical reasoning assistants."""

__version__ = "0.1.0"
