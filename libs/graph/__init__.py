"""Graph engine on Spark DataFrames with GraphFrames' data model and names (see :mod:`libs.graph.frame`)."""
from libs.graph.frame import Graph, GraphFramesGraph, graphframes_available, make_graph
from libs.graph.messages import AM, AggregateMessages

__all__ = ["AM", "AggregateMessages", "Graph", "GraphFramesGraph", "graphframes_available", "make_graph"]
