"""ast-robot: robot policies trained in simulation, steered by what the real robot reports.

Importing the package stays light (no torch, mujoco or rclpy import) so the command line starts
fast and the core works without the optional extras.
"""

__version__ = "0.1.0"
