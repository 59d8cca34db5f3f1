"""fastvp: batched PIC for 1D Vlasov-Poisson and PDE-NHF, its Hamiltonian-flow surrogate."""

from .config import PICConfig
from .initial import Batch, initial_conditions
from .pic.simulate import Trajectory, simulate

__version__ = "0.1.0"

__all__ = ["PICConfig", "Batch", "initial_conditions", "Trajectory", "simulate", "__version__"]
