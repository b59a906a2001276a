"""The torch core every tool of `ifcn.trainer` shares: the click type and its padder, the network-input contract
(`InputSpec`, click maps, `network_input`), checkpoint I/O, metrics, device and precision, the batched clicker.

It imports only the shared `ifcn` modules and `ifcn.trainer.models`; training, evaluation, inference and the demo
import it, never the other way (`tests/test_import_layers.py` checks the rule).
"""
