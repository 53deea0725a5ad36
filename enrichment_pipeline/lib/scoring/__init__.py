"""ICP scoring, in three modules that each read alone.

- `model`: the schema of an ICP model file (criteria, disqualifiers, tiers) as pydantic models;
  every rule a model must follow lives there.
- `loader`: YAML (or JSON) bytes to a validated model, every problem reported as
  `file:line: path: message`; where model files may come from.
- `engine`: profiles + model to scores, vectorized in polars.

The model itself is data: `config/icp_model.yaml`.
"""
