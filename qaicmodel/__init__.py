"""qaicmodel: an executable reference model of the Qualcomm Cloud AI 100 (AIC100)
host interface as the Linux ``accel/qaic`` driver sees it.

Public surface (thin, over private modules):
  * :mod:`qaicmodel.spec` - the device model and the reference host;
  * :mod:`qaicmodel.impl` - the fast host DMA path;
  * :mod:`qaicmodel.errors` - every exception the library raises.
"""

__version__ = "0.1.0"
