"""API schemas (request and response bodies), one module per family; the tables are in
``registry.tables``.

- ``base``: ``Schema``, the base of every body, and ``ProtocolSchema`` for the Hub's and
  Git LFS's bodies
- ``repos``: repositories, versions, aliases, audit events, health
- ``compose``: compositions, jobs and lineage
- ``export``: exports (GGUF files derived from a version)
- ``trust``: tokens, protected-alias rules, audit verification, gc
- ``access``: the access log (downloads)
- ``console``: what the web console reads beyond the rest of the API
- ``hub``: the Hugging Face Hub-compatible API, in the Hub's field names
- ``lfs``: the Git LFS batch API
"""
