"""What the pages show, assembled from ``core.services``: view-models of the training pages and the
server-sent event feed of a job. Web-only; may import ``core`` and ``app.templating``."""
