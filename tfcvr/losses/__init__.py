"""Loss pieces shared by every method: per-example losses, reductions, the propensity family."""

from tfcvr.losses.binary_crossentropy import binary_crossentropy
from tfcvr.losses.divergence import bernoulli_kl
from tfcvr.losses.doubly_robust import DoublyRobustLoss
from tfcvr.losses.imputation import ImputationLoss
from tfcvr.losses.inverse_propensity import InversePropensityLoss
from tfcvr.losses.propensity_weighting import NORMALIZATIONS, PropensityWeightedLoss, sample_mean
from tfcvr.losses.reduction import masked_mean
from tfcvr.losses.sampling import keep_lowest, undersample_unclicked
