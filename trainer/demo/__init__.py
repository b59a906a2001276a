"""The interactive web demo (`ifcn-eval demo`): a page to select objects by clicking, over a JSON API."""
