"""Loss pieces shared by every method: per-example losses and their reductions."""

from tfcvr.losses.binary_crossentropy import binary_crossentropy
from tfcvr.losses.reduction import masked_mean
