"""Wire-faithful local stand-ins for the providers (Replicate, RunPod, Veo, ComfyUI), used by tests and `hvr dev`."""
