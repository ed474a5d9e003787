"""nipype workflow factories (``init_*_wf``) that wire the library parts together."""
