"""Model workers on a Ray cluster (issue 19): the front daemon keeps its endpoints, queue, router
and files; each model runs in a Ray actor (`worker.ModelWorker`), and a job's chunks stream back
through a Ray streaming generator. Imported only with `--ray`: Ray is an optional extra.
"""
