"""``graph_vertices``: typed vertices of the heterogeneous Creator-Product-Video-User graph.

One partition per observation day (``dt``): the entities seen in that day's silver partitions.
A vertex may appear on many days; :func:`libs.graph.hetero.load_graph` keeps one row per ``id``
over the window it reads. Ids are ``"<vertex_type>:<natural id>"`` so ids of different types can
never collide (a device id and a user key are both opaque strings) and GraphFrames' single ``id``
column holds every type. Written by ``jobs/graph_edges.py`` together with ``graph_edges``.
"""
from pyspark.sql.types import StringType, StructField, StructType

KEYS = ["dt", "id"]
PARTITION_COLS = ["dt"]
FORMAT = "delta"
VERTEX_TYPES = ("creator", "video", "product", "user", "device", "ip", "payment")
SCHEMA = StructType([
    StructField("id", StringType(), False),           # "<vertex_type>:<key>"
    StructField("vertex_type", StringType(), False),  # one of VERTEX_TYPES
    StructField("key", StringType(), False),          # natural id: creator_id, video_id, user_key, ip24, ...
    StructField("market", StringType(), True),        # ISO market where the entity has one (creator, user, video)
    StructField("dt", StringType(), False),           # observation day
])
