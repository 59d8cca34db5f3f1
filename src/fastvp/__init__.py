"""fastvp: batched PIC for 1D Vlasov-Poisson and PDE-NHF, its Hamiltonian-flow surrogate."""

from . import problems
from ._version import __version__
from .config import PICConfig
from .data import Dataset, generate_dataset, load_dataset
from .initial import initial_conditions
from .metrics import wasserstein_1d
from .particles import Batch, Trajectory
from .pic.simulate import simulate
from .surrogate.model import Surrogate
from .surrogate.train import TrainConfig, train

__all__ = [
    "PICConfig",
    "Batch",
    "initial_conditions",
    "Trajectory",
    "simulate",
    "problems",
    "Dataset",
    "generate_dataset",
    "load_dataset",
    "Surrogate",
    "TrainConfig",
    "train",
    "wasserstein_1d",
    "__version__",
]
