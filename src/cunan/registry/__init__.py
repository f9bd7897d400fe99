"""The village registry: places, people, tenancies, consent and face templates, with its rules."""
