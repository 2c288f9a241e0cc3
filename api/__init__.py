"""The HTTP service: explained Japanese passages and LLM-ready context
(`uvicorn rag_splade.api.app:app`; from a checkout, `uvicorn api.app:app`)."""
