"""tripsage package."""
