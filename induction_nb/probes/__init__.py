"""What goes into the model: generated probe sequences with their controls, the shipped public-domain
passages, and your own documents read from files, folders and tables.

No model is touched here: token ids come from a vocabulary size (and a tokenizer for text).
"""

from .few_shot import FewShotTask
from .fuzzy import FuzzyProbes, WordPair, fuzzy_probes, word_pairs
from .passages import PASSAGES
from .patterns import EXTRA_PATTERN_NAMES, PATTERN_NAMES, Pattern, PatternGenerator
from .texts import load_texts

__all__ = [
    "FewShotTask",
    "FuzzyProbes",
    "WordPair",
    "EXTRA_PATTERN_NAMES",
    "PASSAGES",
    "PATTERN_NAMES",
    "Pattern",
    "PatternGenerator",
    "fuzzy_probes",
    "load_texts",
    "word_pairs",
]
