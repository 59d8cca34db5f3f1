"""Batched Particle-In-Cell solver of the 1D-1V Vlasov-Poisson system."""
