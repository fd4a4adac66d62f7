"""Knowledge-base ingestion: loaders, chunking, the vector store and incremental sync (see issue 3)."""
