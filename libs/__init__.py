"""Pure logic of the creator-governance job suite: DataFrame -> DataFrame transforms, engines, platform glue."""
