"""Photo-library organizer: finds every face, groups faces into people, and keeps the
user's labels safe. The public API lives in the submodules (``scanner``, ``clustering``,
``labelling``, ``slideshow``, ``resemblance``); ``cli`` and ``dashboard`` are thin layers
over them."""

__version__ = "0.1.0"
