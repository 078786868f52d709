"""``smartcrop serve gateway``: Qencode's public API, served by smartcrop, so an upstream system keeps its client."""
