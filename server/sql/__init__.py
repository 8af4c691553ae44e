"""SQL for the engines: one emitter over planned ADQL, and a dialect per engine."""
