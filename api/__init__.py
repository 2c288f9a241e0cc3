"""The HTTP service: explained Japanese passages and LLM-ready context (`uvicorn api.app:app`)."""
