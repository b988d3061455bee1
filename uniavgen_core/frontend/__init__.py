"""From what a user connects (pictures, prompts, audio, video) to a sampling request."""
