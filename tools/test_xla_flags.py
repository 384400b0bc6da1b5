"""Print the XLA_FLAGS that ``make test`` compiles with: XLA:CPU's classic emitter
(``--xla_cpu_use_fusion_emitters=false``: the same arithmetic in about 60 % of the compile time, see
docs/design.md "test suite"), where this jaxlib has the switch; nothing where it does not (an unknown
flag in XLA_FLAGS aborts the process, and newer XLA releases dropped this one)."""
from fnnet.verify import usable_xla_flags

print(" ".join(usable_xla_flags(["--xla_cpu_use_fusion_emitters=false"])))
