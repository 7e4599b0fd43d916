"""``silver_devices``: daily snapshot of (creator, device) pairs, typed, deduplicated and conformed (see :mod:`schemas._silver`)."""
from schemas import raw_devices
from schemas._silver import silver_schema

KEYS = ['dt', 'creator_id', 'device_id']          # unique per load partition
PARTITION_COLS = ["dt"]
ZORDER_COLS = ['device_id']     # the column detectors filter and join on
FORMAT = "delta"
PSEUDONYMISE: tuple[str, ...] = ()   # raw user-id columns replaced by <name>_key
AMOUNT = None                  # local-currency amount that gains <amount>_usd
LOCAL_DATE_OF = 'last_seen'            # UTC timestamp that gains local_date
SCHEMA = silver_schema(raw_devices.SCHEMA, pseudonymise=PSEUDONYMISE, amount=AMOUNT, local_date_of=LOCAL_DATE_OF)
