"""Board tops: the designs with a board's I/O around them."""
