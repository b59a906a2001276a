"""`ifcn-eval annotate`: the interactive model as an annotation tool (project folder, labels, VOC/COCO export)."""
