"""The Flower app Pollen submits to a SuperLink (see ``training.deployed.build_fab``).

The modules of this package are copied into the FAB as the package ``pollen_federation``; they
import Pollen's engine, which the SuperLink and SuperNode hosts have installed (runtime dependency
installation stays disabled).
"""
