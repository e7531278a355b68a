"""Playing in time (issue 15): the daemon's timeline (Ableton Link or its own), takes in bars,
quantized launch, seamless loops, and conforming generated audio to the tempo."""
