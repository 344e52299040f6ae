"""The hand-built induction transformer lives in the package (induction_nb.toy) for the notebooks too."""

from induction_nb.toy import BETA, T_MAX, V, HandBuiltInduction, ToyAttention  # noqa: F401
