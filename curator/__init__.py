"""curator: data curation for training language models on synthetic data without model collapse."""
import os as _os

# Lance logs a warning for every dataset it creates; curator creates them on purpose.
_os.environ.setdefault("LANCE_LOG", "error")

__version__ = "0.1.0"
