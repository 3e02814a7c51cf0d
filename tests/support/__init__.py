"""What the tests share, by topic. Modules marked (plugin) also define fixtures; they are
registered in tests/conftest.py, so every test can request them.

- ``factories``: the tiny Llama and real PEFT adapters on it, built on disk.
- ``llama_cpp``: llama.cpp's Python bindings and quantizer, where a build is available.
- ``processes``: free ports, child processes that die with pytest, `lorry` processes.
- ``postgres`` (plugin): a private PostgreSQL cluster and fresh databases on it.
- ``s3`` (plugin): moto's S3 server and fresh buckets on it.
- ``backends`` (plugin): ``Settings`` and the app for either backend pair.
- ``files``: digests and the files of a directory.
- ``rest``: the REST API as tests drive it (push, read a version, wait for a job, row counts).
- ``outages``: PostgreSQL restarted while threads keep calling the service.
- ``tokens``: API tokens created in the database.
- ``live``: the app under uvicorn in a thread.
- ``compositions``: the skill adapters pushed, a recipe, a composition submitted.
- ``cli`` (plugin): a real ``lorry serve`` process for the CLI tests.
"""
