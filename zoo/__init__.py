"""The task zoo of LoGo Studio: seeded task generators (zoo.tasks) and the builder of assets/tasks (zoo.build_tasks)."""
