"""PDE-NHF: the Hamiltonian normalizing-flow surrogate of the PIC simulator."""
