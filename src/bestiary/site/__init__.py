"""Static assets of the notebook site that `bestiary notebooks build` writes (style.css)."""
