"""Incident rules, one module per family; :class:`RuleEngine` runs them (docs/rules.md).

- immediate: SOS, fall, smoke, gas, water leak, forced door, tamper, gate fault
- duration: door held open, fire lane / no-parking occupancy, parking overstay
- inactivity: no activity in an elderly resident's home for N active hours
- threshold: abnormal vitals (consecutive readings), low battery (hysteresis)
- offline: device offline after a hold, grouped by bridge / LoRaWAN gateway / building / compound
- correlation: fall then no motion, night-time wandering (dementia), repeated access denied
- schedule: intrusion zones armed in configured hours
"""

from gateway.rules.engine import RuleEngine

__all__ = ["RuleEngine"]
