"""Music (one → sequence): next-step models of Bach chorales (piano roll) and folk melodies (note events) that
generate MIDI."""
