//! How the variables are read from the process's environment, and the
//! list of them that `--help` and the table in docs/operations.md show.

use clap::CommandFactory;

use super::Config;

/// `command` (and its subcommands) as the process reads its environment:
/// each value is named by its variable in help and errors, and a variable
/// that is set but blank counts as unset rather than as an empty value.
pub fn reading_environment(command: clap::Command) -> clap::Command {
    let command = command.mut_args(|arg| {
        let Some(name) = arg.get_env().map(|n| n.to_string_lossy().into_owned()) else {
            return arg;
        };
        let blank =
            std::env::var_os(&name).is_some_and(|value| value.to_string_lossy().trim().is_empty());
        let arg = arg.value_name(name);
        if blank {
            arg.env(None::<&'static str>)
        } else {
            arg
        }
    });
    let names: Vec<String> = command
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    names.into_iter().fold(command, |command, name| {
        command.mut_subcommand(name, reading_environment)
    })
}

/// Each variable clap knows: its name and default, if it has one.
pub fn variables() -> Vec<(String, Option<String>)> {
    Config::command()
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_env()?.to_string_lossy().into_owned();
            let default = arg
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned());
            Some((name, default))
        })
        .collect()
}
