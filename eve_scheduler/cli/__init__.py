"""The ``eve-scheduler`` command line: ``demo`` and ``replay``.

The commands use the library; nothing in the library imports them. Their heavy
dependencies (Lightning, scikit-learn, matplotlib, TensorBoard) are imported
only when a command needs them.
"""
