"""nuclio entry points of the ifcn interactor for CVAT: the model is loaded once per worker, each event answered by
`ifcn.trainer.annotate.cvat.interact`. The checkpoint path comes from the IFCN_CHECKPOINT environment variable."""

import json
import os

from ifcn.trainer.annotate.cvat import interact
from ifcn.trainer.demo.demo_serve import load_predictor


def init_context(context):
    context.logger.info("loading the ifcn checkpoint")
    context.user_data.predictor = load_predictor(os.environ.get("IFCN_CHECKPOINT", "/opt/nuclio/best.pt"), "auto")[0]
    context.user_data.max_side = int(os.environ.get("IFCN_MAX_SIDE", "1024"))


def handler(context, event):
    body = event.body if isinstance(event.body, dict) else json.loads(event.body)
    try:
        answer, status = interact(context.user_data.predictor, body, context.user_data.max_side), 200
    except ValueError as e:
        answer, status = {"error": str(e)}, 400
    return context.Response(body=json.dumps(answer), headers={}, content_type="application/json", status_code=status)
