"""Reading corpora into the catalog: the MSP-Podcast layout, and a synthetic corpus in that layout."""
