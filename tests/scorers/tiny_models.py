"""The tiny-model builders live in the package (`curator.tinylm`); tests import them from here."""
from curator.tinylm import *  # noqa: F401,F403
from curator.tinylm import REWARD_TEXTS, TRAIN_TEXT  # noqa: F401
