import anyio
import attrs

import runkit


@attrs.frozen
class Greet:
    name: str


async def greet(ctx):
    await ctx.log("info", f"hello {ctx.definition.name}")
    return {"greeted": ctx.definition.name}


async def main():
    kinds = [runkit.Kind("greet", executor=greet, config=Greet)]
    async with (
        runkit.Runkit("sqlite:///runs.db", kinds=kinds) as rk,
        runkit.embedded_workers(rk, concurrency=2),
    ):
        # The key makes the program safe to run again: create then returns the same run,
        # already succeeded, and wait returns it at once.
        created = await rk.create(
            "greet", {"name": "Ada"}, idempotency_key="greet-ada", execute=True
        )
        run = await rk.wait(created.run.id, timeout=30)
        print(run.status.value, run.result)
        for entry in (await rk.logs(run.id)).entries:
            print(f"  {entry.level}: {entry.message}")


anyio.run(main)
