"""The local control plane: what moto records but cannot run (endpoint updates, Lambda code,
alarm evaluation, CodeDeploy), run as real local processes behind the same AWS APIs.

``mlship local up`` starts it (``python -m mlship.local.plane``) in front of the moto server;
every call a service here does not answer is passed through to moto unchanged.
"""
