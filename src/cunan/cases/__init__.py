"""Cases: unknown sightings grouped per face, verified on site, and the outcomes (补录 etc.)."""
