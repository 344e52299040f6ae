"""The hand-built induction transformer lives in the package (induction_nb.analysis.toy) for the notebooks too."""

from induction_nb.analysis.toy import BETA, T_MAX, HandBuiltInduction, ToyAttention, V  # noqa: F401
